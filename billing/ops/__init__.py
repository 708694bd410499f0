"""Operations on a session: billing, changes, renewal, cycle fees, numbering, revrec, views."""
