"""Azure OpenAI: the client, admission, submission and health checks."""
