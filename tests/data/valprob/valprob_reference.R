# Reference values for logistic recalibration and the calibration report, computed with R's
# glm (profile intervals from confint), rms::val.prob and Hmisc::somers2.
# Run from the repository root:  Rscript tests/data/valprob/valprob_reference.R
# It writes tests/data/valprob/valprob_reference.csv: dataset, weighted, name, value.
suppressPackageStartupMessages({ library(rms); library(MASS) })
here <- "tests/data/valprob"
out <- data.frame(dataset = character(), weighted = logical(), name = character(),
                  value = character())
put <- function(dataset, weighted, name, value) {
  out[nrow(out) + 1, ] <<- list(dataset, weighted, name, sprintf("%.17g", value))
}

deviance_at <- function(y, lp, w) -2 * sum(w * (y * plogis(lp, log.p = TRUE) +
                                                 (1 - y) * plogis(-lp, log.p = TRUE)))

one <- function(dataset, d, weighted) {
  # A column of its own: glm looks `weights` up in `data` first, where `w` is the weights.
  d$case_weight <- if (weighted) d$w else rep(1, nrow(d))
  w <- d$case_weight
  ctl <- glm.control(epsilon = 1e-14, maxit = 100)
  slope <- glm(y ~ lp, family = binomial, data = d, weights = case_weight, control = ctl)
  large <- glm(y ~ 1, offset = lp, family = binomial, data = d, weights = case_weight, control = ctl)
  ci_slope <- suppressMessages(confint(slope, level = 0.95))
  ci_large <- suppressMessages(confint(large, level = 0.95))
  v <- vcov(slope)
  put(dataset, weighted, "slope.intercept", coef(slope)[1])
  put(dataset, weighted, "slope.slope", coef(slope)[2])
  put(dataset, weighted, "slope.var_intercept", v[1, 1])
  put(dataset, weighted, "slope.var_slope", v[2, 2])
  put(dataset, weighted, "slope.cov", v[1, 2])
  put(dataset, weighted, "slope.ci_intercept_low", ci_slope[1, 1])
  put(dataset, weighted, "slope.ci_intercept_high", ci_slope[1, 2])
  put(dataset, weighted, "slope.ci_slope_low", ci_slope[2, 1])
  put(dataset, weighted, "slope.ci_slope_high", ci_slope[2, 2])
  put(dataset, weighted, "slope.deviance", deviance(slope))
  put(dataset, weighted, "large.shift", coef(large)[1])
  put(dataset, weighted, "large.se", sqrt(vcov(large)[1, 1]))
  put(dataset, weighted, "large.ci_low", ci_large[1])
  put(dataset, weighted, "large.ci_high", ci_large[2])
  put(dataset, weighted, "large.deviance", deviance(large))
  d0 <- deviance_at(d$y, d$lp, w)
  put(dataset, weighted, "deviance_at_identity", d0)
  # Miller's tests: a = 0 and b = 1 jointly; a = 0 given b = 1; b = 1 given a free.
  put(dataset, weighted, "miller.joint", d0 - deviance(slope))
  put(dataset, weighted, "miller.intercept", d0 - deviance(large))
  put(dataset, weighted, "miller.slope", deviance(large) - deviance(slope))
  put(dataset, weighted, "miller.joint_p", pchisq(d0 - deviance(slope), 2, lower.tail = FALSE))
  put(dataset, weighted, "miller.intercept_p",
      pchisq(d0 - deviance(large), 1, lower.tail = FALSE))
  put(dataset, weighted, "miller.slope_p",
      pchisq(deviance(large) - deviance(slope), 1, lower.tail = FALSE))
  if (!weighted) {
    p <- plogis(d$lp)
    stats <- val.prob(p, d$y, pl = FALSE)
    for (name in names(stats)) put(dataset, weighted, paste0("val.prob.", name), stats[[name]])
    put(dataset, weighted, "somers2.C", Hmisc::somers2(p, d$y)[["C"]])
    put(dataset, weighted, "brier", mean((p - d$y)^2))
  }
}

synthetic <- read.csv(file.path(here, "synthetic.csv"))
breast <- read.csv(file.path(here, "breast_cancer.csv"))
one("synthetic", synthetic, FALSE)
one("synthetic", synthetic, TRUE)
one("breast_cancer", breast, FALSE)
write.csv(out, file.path(here, "valprob_reference.csv"), row.names = FALSE, quote = FALSE)
cat(R.version.string, "; rms", as.character(packageVersion("rms")), "\n")
