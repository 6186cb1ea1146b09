# The smooth calibration curve's reference: glm(y ~ rms::rcs(lp, knots), binomial) with the
# knots on logitshift's grid (Harrell's quantiles of lp, rounded to the nearest 1/16), its
# coefficients, covariance, the curve and its standard error on a grid (predict, se.fit),
# and Austin & Steyerberg's ICI / E50 / E90 / Emax from its fitted values on the rows.
#
# Data: synthetic.csv (make_data.py; with and without its frequency weights), the
# breast-cancer model of ../valprob/breast_cancer.csv, and lme4's VerbAgg: a logistic model
# fitted on its even rows and applied to its odd rows (written to verbagg.csv, lp to 17
# digits, so that Python reads the very doubles R used).
#
# Run from the repository root: Rscript tests/data/curve/curve_reference.R
suppressMessages({library(rms); library(lme4); library(jsonlite)})
here <- "tests/data/curve"

harrell <- list(`3` = c(.1, .5, .9), `4` = c(.05, .35, .65, .95),
                `5` = c(.05, .275, .5, .725, .95))

reference <- function(y, lp, w = NULL, nk = 5) {
  quantiles <- unname(quantile(lp, harrell[[as.character(nk)]]))
  knots <- round(quantiles * 16) / 16
  if (is.null(w)) w <- rep(1, length(y))
  control <- glm.control(epsilon = 1e-14, maxit = 100)
  fit <- glm(y ~ rcs(lp, knots), family = binomial, weights = w, control = control)
  # glm's vcov (and predict's se.fit) come from the weights of its last IRLS iteration, at
  # the coefficients before the last step (5e-7 away here): refit from the answer, so that
  # they are the information's inverse at the answer itself.
  fit <- glm(y ~ rcs(lp, knots), family = binomial, weights = w, control = control,
             start = coef(fit))
  grid <- seq(quantile(lp, .01), quantile(lp, .99), length.out = 41)
  pred <- predict(fit, newdata = data.frame(lp = grid), type = "link", se.fit = TRUE)
  difference <- abs(fitted(fit) - plogis(lp))
  repeated <- rep(difference, w)  # integer weights: the rows repeated
  list(knots = knots, harrell_quantiles = quantiles, coefficients = unname(coef(fit)),
       covariance = unname(vcov(fit)), grid = grid, fit = unname(pred$fit),
       se = unname(pred$se.fit), ici = sum(w * difference) / sum(w),
       e50 = unname(quantile(repeated, .5)), e90 = unname(quantile(repeated, .9)),
       emax = max(difference), deviance = deviance(fit), converged = fit$converged)
}

synthetic <- read.csv(file.path(here, "synthetic.csv"))
cancer <- read.csv("tests/data/valprob/breast_cancer.csv")
data(VerbAgg)
even <- VerbAgg[seq(2, nrow(VerbAgg), 2), ]
odd <- VerbAgg[seq(1, nrow(VerbAgg), 2), ]
model <- glm(r2 ~ Anger + Gender + btype + situ + mode, family = binomial, data = even)
verbagg <- data.frame(y = as.integer(odd$r2 == "Y"),
                      lp = unname(predict(model, newdata = odd, type = "link")))
writeLines(c("y,lp", sprintf("%d,%.17g", verbagg$y, verbagg$lp)),
           file.path(here, "verbagg.csv"))
verbagg <- read.csv(file.path(here, "verbagg.csv"))

# val.prob's smooth: lowess(p, y, iter = 0), R's defaults f = 2/3, delta = 0.01 * range(p);
# and with delta = 0 (a local line at every row, no interpolation between anchors).
lowess_reference <- function(y, lp, delta = NULL) {
  p <- plogis(lp)
  if (is.null(delta)) delta <- 0.01 * diff(range(p))
  smooth <- lowess(p, y, iter = 0, delta = delta)
  at_rows <- approx(smooth$x, smooth$y, xout = p, ties = mean)$y
  difference <- abs(at_rows - p)
  list(x = smooth$x, fitted = smooth$y, ici = mean(difference),
       e50 = unname(quantile(difference, .5)), e90 = unname(quantile(difference, .9)),
       emax = max(difference))
}

out <- list(
  lowess_breast_cancer = lowess_reference(cancer$y, cancer$lp),
  lowess_synthetic = lowess_reference(synthetic$y, synthetic$lp),
  lowess_exact_breast_cancer = lowess_reference(cancer$y, cancer$lp, delta = 0),
  lowess_exact_synthetic = lowess_reference(synthetic$y, synthetic$lp, delta = 0),
  synthetic = reference(synthetic$y, synthetic$lp),
  synthetic_weighted = reference(synthetic$y, synthetic$lp, synthetic$w),
  synthetic_3 = reference(synthetic$y, synthetic$lp, nk = 3),
  breast_cancer = reference(cancer$y, cancer$lp, nk = 4),
  verbagg = reference(verbagg$y, verbagg$lp),
  versions = list(R = R.version.string, rms = as.character(packageVersion("rms")),
                  lme4 = as.character(packageVersion("lme4"))))
write(toJSON(out, digits = I(17), auto_unbox = TRUE, pretty = TRUE),
      file.path(here, "curve_reference.json"))
