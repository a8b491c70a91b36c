"""Posts, threaded comments, reactions and the feeds that show them."""
