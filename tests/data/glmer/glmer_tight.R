# glmer_reference.R again, with bobyqa's trust region shrunk to 1e-12 (glmer's default stops
# it at 2e-7, which leaves the nAGQ = 25 optimum about 3e-6 from the maximum: its gradient
# there is 3e-4). Same data, same model: y ~ 1 + (1 | group) + offset(offset), binomial.
# Run from the repository root:  Rscript tests/data/glmer/glmer_tight.R
# It writes glmer_tight.csv (dataset, nagq, name, value) and glmer_tight_modes.csv (dataset,
# nagq, group, mode, sd).
suppressPackageStartupMessages(library(lme4))
here <- "tests/data/glmer"
tight <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
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
cbpp <- read.csv(file.path(here, "cbpp.csv"))
cbpp$herd <- factor(cbpp$herd)
for (nagq in c(1, 25)) {
  record("grouped", glmer(y ~ 1 + (1 | group) + offset(offset), data = grouped,
                          family = binomial, nAGQ = nagq, control = tight), nagq)
  record("cbpp", glmer(cbind(incidence, size - incidence) ~ 1 + (1 | herd) + offset(lp),
                       data = cbpp, family = binomial, nAGQ = nagq, control = tight), nagq)
}
write.csv(out, file.path(here, "glmer_tight.csv"), row.names = FALSE, quote = FALSE)
write.csv(modes, file.path(here, "glmer_tight_modes.csv"), row.names = FALSE, quote = FALSE)
cat(R.version.string, "; lme4", as.character(packageVersion("lme4")), "\n")
