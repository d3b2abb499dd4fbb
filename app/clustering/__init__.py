"""The pure clustering core: online model, fitting, checkpoint codec, metrics, labels.

No SQL, no settings, no HTTP: nothing here imports from app outside app.clustering.
"""
