"""Who is acting, in which practice, with which role and for what purpose: the claims
each transaction carries into PostgreSQL, where the policies read them."""
