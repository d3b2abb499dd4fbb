"""The MovieLens evaluation's parts: replay and scoring, offline reference, recommender, plots,
and the in-process simulator."""
