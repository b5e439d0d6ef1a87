from services.tts_worker.main import main

main()
