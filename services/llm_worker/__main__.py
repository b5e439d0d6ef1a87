from services.llm_worker.main import main

main()
