"""Online clustering of user interest vectors: model, checkpoint codec, metrics, labels."""
