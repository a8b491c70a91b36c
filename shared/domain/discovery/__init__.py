"""Discovery: recommendations, icebreakers, places, curated lists and the map."""
