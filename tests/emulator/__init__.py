"""The Azure OpenAI Batch emulator, through the real openai SDK."""
