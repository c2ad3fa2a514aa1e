"""The assistant over the Wyoming protocol (Home Assistant's voice protocol, the `wyoming` package).

service.py   what every connection shares: the Runner, the model thread pool, one-stage traces
asr.py       Transcribe + audio -> Transcript (our endpointing + faster-whisper)
tts.py       Synthesize -> audio (Piper, streamed sentence by sentence)
wake.py      Detect + audio -> Detection / NotDetected (openWakeWord)
handle.py    Transcript -> Handled / NotHandled (NLU, resolution, skills: a conversation agent)
satellite.py the brain of Wyoming satellites: their microphone stream through the whole pipeline, answers back
server.py    the server (wyoming's AsyncServer), routing, error events, `describe` -> Info
"""
