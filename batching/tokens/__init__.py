"""Token estimates offline, from the encodings shipped in bpe-openai."""
