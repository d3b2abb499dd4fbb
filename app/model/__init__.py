"""The model's lifecycle: trainer, evaluation, checkpoint repository, query-side cache, API."""
