# R's lowess where runs of tied probabilities fill a whole neighbourhood (statsmodels
# divides by a zero radius there). Run: Rscript tests/data/curve/lowess_ties.R
# Writes tests/data/curve/lowess_ties.json: the rows and R's fitted value at each.
cases <- list()
set.seed(1)
p <- c(rep(0.5, 80), seq(0.1, 0.9, length = 20))
cases$most_tied <- list(p = p, y = as.numeric(runif(100) < p))
cases$all_tied <- list(p = rep(0.5, 10), y = c(1, 0, 1, 1, 0, 0, 1, 0, 1, 1))
p <- c(rep(0.2, 70), rep(0.7, 30))
cases$two_runs <- list(p = p, y = as.numeric(runif(100) < p))
out <- lapply(cases, function(case) {
  o <- order(case$p)
  fit <- lowess(case$p, case$y, iter = 0)
  fitted <- numeric(length(case$p)); fitted[o] <- fit$y
  list(p = case$p, y = case$y, fitted = fitted)
})
writeLines(jsonlite::toJSON(out, digits = NA, auto_unbox = TRUE),
           "tests/data/curve/lowess_ties.json")
