"""Dashboard accounts: sign-up, email confirmation, sign-in sessions, password reset and
two-factor codes."""
