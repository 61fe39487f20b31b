"""Services behind the routes: runner, store, auth, inventory, locks."""
