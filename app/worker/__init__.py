"""The worker: claim -> embed -> fold -> (leader only) train -> checkpoint -> evaluate."""
