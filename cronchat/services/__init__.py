"""Services: the domain rules and transaction boundaries. No Tornado in here."""
