"""Fixtures shared by the test files: one local Spark session for the whole run."""

from __future__ import annotations

import os
import shutil
import sys

import pytest


@pytest.fixture(scope="session")
def spark():
    """A local Spark session of two cores, started once per test run and stopped at its end.

    The master ``local[2,2]`` lets a task fail once and be retried (plain ``local[2]`` gives up
    on the first failure); batches of 1000 rows make the partitions of the tests span several
    Arrow batches, so that rows are numbered across them."""
    pytest.importorskip("pyspark", reason="the Spark source needs pyspark (logitshift[spark])")
    pytest.importorskip("pandas", reason="pyspark's mapInArrow needs pandas")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs a Java runtime: neither java on the PATH nor JAVA_HOME")
    from pyspark.sql import SparkSession

    # The workers run this interpreter, with this logitshift on their path.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    session = (SparkSession.builder.master("local[2,2]").appName("logitshift-tests")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.memory", "1g")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.default.parallelism", "2")
               .config("spark.sql.execution.arrow.maxRecordsPerBatch", "1000")
               .config("spark.task.maxFailures", "2")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
