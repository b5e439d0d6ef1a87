"""The live call: its session and state machine, the reply pipeline, turn detection, audio out."""
