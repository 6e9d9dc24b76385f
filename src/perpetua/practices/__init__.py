"""Practices, the covered entities Perpetua serves: sign-up, the free trial and the
read-only state a practice falls into when its trial ends without a plan."""
