"""The compiler: a RuleSet becomes SQLGlot trees for both stages of a run."""
