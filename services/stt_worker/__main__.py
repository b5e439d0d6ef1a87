from services.stt_worker.main import main

main()
