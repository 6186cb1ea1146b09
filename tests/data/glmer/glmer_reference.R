# Reference values for per-group shifts with random intercepts: lme4's glmer with the
# offset, y ~ 1 + (1 | group) + offset(offset), family binomial, at nAGQ = 1 (Laplace) and
# nAGQ = 25 (adaptive Gauss-Hermite), with glmer's defaults otherwise; and the per-group
# maximum-likelihood shifts from glm. Also lme4's own cbpp data, as binomial counts, with an
# offset from its period.
# Run from the repository root:  Rscript tests/data/glmer/glmer_reference.R
# It writes glmer_reference.csv (dataset, nagq, name, value) and glmer_modes.csv (dataset,
# nagq, group, mode, sd: the conditional modes mu + u_g and their conditional SDs).
suppressPackageStartupMessages(library(lme4))
here <- "tests/data/glmer"
out <- data.frame(dataset = character(), nagq = integer(), name = character(),
                  value = character())
modes <- data.frame(dataset = character(), nagq = integer(), group = character(),
                    mode = character(), sd = character())
put <- function(dataset, nagq, name, value) {
  out[nrow(out) + 1, ] <<- list(dataset, nagq, name, sprintf("%.17g", value))
}

record <- function(dataset, model, nagq) {
  put(dataset, nagq, "mean", fixef(model)[[1]])
  put(dataset, nagq, "mean_se", sqrt(vcov(model)[1, 1]))
  put(dataset, nagq, "tau", attr(VarCorr(model)[[1]], "stddev")[[1]])
  put(dataset, nagq, "loglik", as.numeric(logLik(model)))
  re <- ranef(model, condVar = TRUE)[[1]]
  sd <- sqrt(attr(re, "postVar")[1, 1, ])
  for (i in seq_len(nrow(re))) {
    modes[nrow(modes) + 1, ] <<- list(dataset, nagq, rownames(re)[i],
                                      sprintf("%.17g", fixef(model)[[1]] + re[i, 1]),
                                      sprintf("%.17g", sd[i]))
  }
}

grouped <- read.csv(file.path(here, "grouped.csv"))
grouped$group <- factor(grouped$group)
for (nagq in c(1, 25)) {
  model <- glmer(y ~ 1 + (1 | group) + offset(offset), data = grouped, family = binomial,
                 nAGQ = nagq)
  record("grouped", model, nagq)
}
single <- glm(y ~ 1, offset = offset, family = binomial, data = grouped)
put("grouped", 0, "pooled_shift", coef(single)[[1]])
put("grouped", 0, "pooled_loglik", as.numeric(logLik(single)))
for (g in levels(grouped$group)) {
  rows <- grouped[grouped$group == g, ]
  if (sum(rows$y) > 0 && sum(rows$y) < nrow(rows)) {
    fit <- glm(y ~ 1, offset = offset, family = binomial, data = rows,
               control = glm.control(epsilon = 1e-14, maxit = 100))
    put("grouped", 0, paste0("mle.", g), coef(fit)[[1]])
    put("grouped", 0, paste0("mle_se.", g), sqrt(vcov(fit)[1, 1]))
  }
}

data(cbpp, package = "lme4")
cbpp$lp <- c(0, -1, -1.1, -1.6)[as.integer(cbpp$period)]
write.csv(cbpp, file.path(here, "cbpp.csv"), row.names = FALSE, quote = FALSE)
for (nagq in c(1, 25)) {
  model <- glmer(cbind(incidence, size - incidence) ~ 1 + (1 | herd) + offset(lp),
                 data = cbpp, family = binomial, nAGQ = nagq)
  record("cbpp", model, nagq)
}
write.csv(out, file.path(here, "glmer_reference.csv"), row.names = FALSE, quote = FALSE)
write.csv(modes, file.path(here, "glmer_modes.csv"), row.names = FALSE, quote = FALSE)
cat(R.version.string, "; lme4", as.character(packageVersion("lme4")), "\n")
