"""Who may sign in and how: password hashing and policy, authenticator-app codes,
recovery codes and security keys (WebAuthn). Nothing here touches the database or
the web layer; callers store what these functions return."""
