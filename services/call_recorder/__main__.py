from services.call_recorder.main import main

main()
