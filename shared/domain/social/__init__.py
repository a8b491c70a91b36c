"""The social graph: friends, follows, blocks, vouches and invite codes."""
