"""The durable engine: episodes, replay, history, store, dispatch, clock."""
