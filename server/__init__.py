"""Job service (store, workers, REST API). Depends on `video` and `inr`."""
