# The per-class shifts of logitshift.fit_multiclass(method = "shift") as R's VGAM fits them:
# vglm(y ~ 1, multinomial, offset = ...) with the last class as reference, so that the
# K - 1 linear predictors are log(p_j / p_K) = (f_j - f_K) + (b_j - b_K).
# Run from this folder: Rscript vglm.R > vglm_results.csv
suppressMessages(library(VGAM))
cat("case,class,estimate,se\n")
for (case in c("k3", "k4_weighted")) {
  d <- read.csv(paste0(case, ".csv"))
  f <- as.matrix(d[, grep("^f", names(d))])
  k <- ncol(f)
  offset <- f[, 1:(k - 1), drop = FALSE] - f[, k]
  y <- factor(d$y, levels = 0:(k - 1))
  fit <- vglm(y ~ 1, multinomial(refLevel = k), offset = offset, weights = d$weight,
              control = vglm.control(epsilon = 1e-15, maxit = 200))
  est <- coef(fit)
  se <- sqrt(diag(vcov(fit)))
  for (j in seq_along(est)) {
    cat(sprintf("%s,%d,%.17g,%.17g\n", case, j - 1, est[j], se[j]))
  }
}
