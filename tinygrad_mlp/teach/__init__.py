"""The teaching code: `reference` (the blog's hand-derived formulas in plain numpy), `blog`
(its network with every node named, the walk checked against those formulas, the three ways
to learn) and `exercises` (derive a backward rule, graded by gradcheck). Reached as
`tm.reference`, `tm.blog` and `tm.exercises`, each imported when first used."""
