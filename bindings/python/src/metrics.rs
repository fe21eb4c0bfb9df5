//! `nimsync._native`'s metrics classes: `Collector`, `Counter`, `Gauge`,
//! `Histogram` and `MetricsServer`, thin wrappers around
//! `nimsync_core::metrics`. Recording never releases the GIL (it takes
//! nanoseconds); exposition and stopping a server do.

use crate::channel::PyChannel;
use crate::errors::err;
use crate::group::PyTaskGroup;
use nimsync_core::metrics::{
    Collector, Counter, CounterVec, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, MetricsServer,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyInt, PyString, PyTuple};
use std::sync::{Arc, Mutex, PoisonError};

/// The label values of a `labels(...)` call: positional (in the order of
/// the label names) or by keyword (every name once), each turned into `str`.
fn label_values(
    metric: &str,
    names: &[String],
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Vec<String>> {
    let kwargs = kwargs.filter(|k| !k.is_empty());
    if names.is_empty() {
        return Err(PyValueError::new_err(format!("metric {metric:?} has no labels")));
    }
    let text = |v: Bound<'_, PyAny>| -> PyResult<String> { Ok(v.str()?.to_string()) };
    match kwargs {
        Some(_) if !args.is_empty() => {
            Err(PyTypeError::new_err("labels() takes label values by position or by keyword, not both"))
        }
        Some(kw) => {
            let mut values = Vec::with_capacity(names.len());
            for name in names {
                let v = kw.get_item(name)?.ok_or_else(|| {
                    PyValueError::new_err(format!("metric {metric:?}: missing label {name:?} (labels: {names:?})"))
                })?;
                values.push(text(v)?);
            }
            if kw.len() != names.len() {
                let unknown: Vec<String> = kw
                    .keys()
                    .iter()
                    .filter_map(|k| k.extract::<String>().ok())
                    .filter(|k| !names.contains(k))
                    .collect();
                return Err(PyValueError::new_err(format!(
                    "metric {metric:?}: unknown label(s) {unknown:?} (labels: {names:?})"
                )));
            }
            Ok(values)
        }
        None => {
            if args.len() != names.len() {
                return Err(PyValueError::new_err(format!(
                    "metric {metric:?} has {} label(s) {names:?}, got {} value(s)",
                    names.len(),
                    args.len()
                )));
            }
            args.iter().map(text).collect()
        }
    }
}

/// What a labelled parent says when it is asked to record.
fn needs_labels(metric: &str, names: &[String]) -> PyErr {
    let example: Vec<String> = names.iter().map(|n| format!("{n}=...")).collect();
    PyValueError::new_err(format!(
        "metric {metric:?} has labels {names:?}: record through .labels({}).",
        example.join(", ")
    ))
}

/// A metric's name and label names, shared by a family and its children.
struct Meta {
    name: String,
    label_names: Vec<String>,
}

fn labels_repr(names: &[String], values: &[String]) -> String {
    let pairs: Vec<String> = names.iter().zip(values).map(|(n, v)| format!("{n}={v:?}")).collect();
    pairs.join(", ")
}

/// A registry of metrics (see `nimsync.Collector`).
#[pyclass(module = "nimsync._native", name = "Collector", frozen, subclass)]
pub(crate) struct PyCollector {
    collector: Collector,
}

fn label_list(labels: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if labels.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err("labels must be a sequence of label names, not one str"));
    }
    labels.try_iter()?.map(|l| l?.extract::<String>()).collect()
}

fn floats(v: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Vec<f64>> {
    match v {
        None => Ok(Vec::new()),
        Some(v) => v
            .try_iter()?
            .map(|x| x?.extract::<f64>().map_err(|_| PyTypeError::new_err(format!("{what} must be numbers"))))
            .collect(),
    }
}

#[pymethods]
impl PyCollector {
    #[new]
    #[pyo3(signature = (enabled=true, sampling_rate=1.0))]
    fn new(py: Python<'_>, enabled: bool, sampling_rate: f64) -> PyResult<Self> {
        let collector = Collector::with_sampling(enabled, sampling_rate).map_err(|e| err(py, e))?;
        Ok(PyCollector { collector })
    }

    /// Whether recording is on (settable).
    #[getter]
    fn enabled(&self) -> bool {
        self.collector.is_enabled()
    }

    #[setter]
    fn set_enabled(&self, enabled: bool) {
        self.collector.set_enabled(enabled);
    }

    /// The probability that a histogram record is kept, 0.0–1.0 (settable).
    #[getter]
    fn sampling_rate(&self) -> f64 {
        self.collector.sampling_rate()
    }

    #[setter]
    fn set_sampling_rate(&self, py: Python<'_>, rate: f64) -> PyResult<()> {
        self.collector.set_sampling_rate(rate).map_err(|e| err(py, e))
    }

    /// Registers (or finds) a counter.
    #[pyo3(signature = (name, help="", labels=None))]
    fn counter(
        &self,
        py: Python<'_>,
        name: &str,
        help: &str,
        labels: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyCounter> {
        let names = labels.map(label_list).transpose()?.unwrap_or_default();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let vec = self.collector.counter_vec(name, help, &refs).map_err(|e| err(py, e))?;
        let series = if names.is_empty() { Some(vec.with(&[]).map_err(|e| err(py, e))?) } else { None };
        let meta = Arc::new(Meta { name: name.to_owned(), label_names: names });
        Ok(PyCounter { vec, series, meta, values: Vec::new() })
    }

    /// Registers (or finds) a gauge.
    #[pyo3(signature = (name, help="", labels=None))]
    fn gauge(&self, py: Python<'_>, name: &str, help: &str, labels: Option<&Bound<'_, PyAny>>) -> PyResult<PyGauge> {
        let names = labels.map(label_list).transpose()?.unwrap_or_default();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let vec = self.collector.gauge_vec(name, help, &refs).map_err(|e| err(py, e))?;
        let series = if names.is_empty() { Some(vec.with(&[]).map_err(|e| err(py, e))?) } else { None };
        let meta = Arc::new(Meta { name: name.to_owned(), label_names: names });
        Ok(PyGauge { vec, series, meta, values: Vec::new() })
    }

    /// Registers (or finds) a histogram.
    #[pyo3(signature = (name, help="", labels=None, buckets=None, quantiles=None, scale=1.0))]
    #[allow(clippy::too_many_arguments)]
    fn histogram(
        &self,
        py: Python<'_>,
        name: &str,
        help: &str,
        labels: Option<&Bound<'_, PyAny>>,
        buckets: Option<&Bound<'_, PyAny>>,
        quantiles: Option<&Bound<'_, PyAny>>,
        scale: f64,
    ) -> PyResult<PyHistogram> {
        let names = labels.map(label_list).transpose()?.unwrap_or_default();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut opts = HistogramOpts::new().scale(scale);
        match (buckets, quantiles) {
            (Some(_), Some(_)) => return Err(PyValueError::new_err("give buckets or quantiles, not both")),
            (Some(b), None) => opts = opts.buckets(&floats(Some(b), "buckets")?),
            (None, Some(q)) => opts = opts.summary(&floats(Some(q), "quantiles")?),
            (None, None) => {}
        }
        let vec = self.collector.histogram_vec(name, help, &refs, opts).map_err(|e| err(py, e))?;
        let series = if names.is_empty() { Some(vec.with(&[]).map_err(|e| err(py, e))?) } else { None };
        let meta = Arc::new(Meta { name: name.to_owned(), label_names: names });
        Ok(PyHistogram { vec, series, meta, values: Vec::new() })
    }

    /// Removes the metric `name` from the exposition; False if there was none.
    fn unregister(&self, name: &str) -> bool {
        self.collector.unregister(name)
    }

    /// The whole collector in the Prometheus text format 0.0.4.
    fn expose(&self, py: Python<'_>) -> String {
        let collector = self.collector.clone();
        py.detach(move || collector.to_prometheus())
    }

    /// Publishes a channel's length, capacity, closed flag and waiting
    /// threads under the label `channel=name`, read at each exposition.
    fn register_channel(&self, py: Python<'_>, name: &str, channel: PyRef<'_, PyChannel>) -> PyResult<()> {
        self.collector.register_channel(name, &channel.channel).map_err(|e| err(py, e))
    }

    /// Publishes the task pool that runs `TaskGroup` tasks (per-worker
    /// spawned, executed, stolen, queue depth, parks; load imbalance) under
    /// the label `scheduler=name`.
    fn register_scheduler(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        let pool = crate::group::python_pool()?;
        self.collector.register_scheduler(name, pool).map_err(|e| err(py, e))
    }

    /// Publishes a task group's counts (tasks spawned and pending, failures,
    /// skipped tasks) under the label `group=name`, read at each exposition.
    fn register_group(&self, py: Python<'_>, name: &str, group: PyRef<'_, PyTaskGroup>) -> PyResult<()> {
        self.collector.register_group(name, group.core()).map_err(|e| err(py, e))
    }

    /// Stops publishing the runtime object registered as `name`.
    fn unregister_runtime(&self, name: &str) -> bool {
        self.collector.unregister_runtime(name)
    }

    /// Serves `expose()` at `GET /metrics` on `address` ("host:port" or a
    /// `(host, port)` tuple; port 0 picks a free one).
    fn serve(&self, py: Python<'_>, address: &Bound<'_, PyAny>) -> PyResult<PyMetricsServer> {
        let address = if let Ok((host, port)) = address.extract::<(String, u16)>() {
            if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }
        } else if let Ok(s) = address.extract::<String>() {
            s
        } else {
            return Err(PyTypeError::new_err("address must be \"host:port\" or a (host, port) tuple"));
        };
        let collector = self.collector.clone();
        let server = py.detach(move || collector.serve(address.as_str())).map_err(|e| err(py, e))?;
        let addr = server.local_addr();
        Ok(PyMetricsServer { server: Mutex::new(Some(server)), host: addr.ip().to_string(), port: addr.port() })
    }

    fn __repr__(&self) -> String {
        format!(
            "Collector(enabled={}, sampling_rate={})",
            if self.collector.is_enabled() { "True" } else { "False" },
            self.collector.sampling_rate()
        )
    }
}

/// A counter, or one labelled series of it.
#[pyclass(module = "nimsync._native", name = "Counter", frozen)]
pub(crate) struct PyCounter {
    vec: CounterVec,
    series: Option<Counter>,
    meta: Arc<Meta>,
    values: Vec<String>,
}

impl PyCounter {
    fn series(&self) -> PyResult<&Counter> {
        self.series.as_ref().ok_or_else(|| needs_labels(&self.meta.name, &self.meta.label_names))
    }
}

#[pymethods]
impl PyCounter {
    /// Adds `amount` (a whole number >= 0; default 1).
    #[pyo3(signature = (amount=None))]
    fn inc(&self, amount: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let n: u64 = match amount {
            None => 1,
            Some(a) => a
                .extract()
                .map_err(|_| PyValueError::new_err(format!("a counter only goes up by whole numbers >= 0, got {a}")))?,
        };
        self.series()?.add(n);
        Ok(())
    }

    /// The series for these label values (by position or keyword).
    #[pyo3(signature = (*values, **by_name))]
    fn labels(
        &self,
        py: Python<'_>,
        values: &Bound<'_, PyTuple>,
        by_name: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyCounter> {
        let values = label_values(&self.meta.name, &self.meta.label_names, values, by_name)?;
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let series = self.vec.with(&refs).map_err(|e| err(py, e))?;
        Ok(PyCounter { vec: self.vec.clone(), series: Some(series), meta: self.meta.clone(), values })
    }

    /// The current total.
    #[getter]
    fn value(&self) -> PyResult<u64> {
        Ok(self.series()?.get())
    }

    /// The metric's name.
    #[getter]
    fn name(&self) -> String {
        self.meta.name.clone()
    }

    fn __repr__(&self) -> String {
        let value = self.series.as_ref().map_or("labelled".into(), |s| s.get().to_string());
        format!("Counter({:?}, {}{value})", self.meta.name, labels_repr(&self.meta.label_names, &self.values) + ": ")
    }
}

/// A gauge, or one labelled series of it.
#[pyclass(module = "nimsync._native", name = "Gauge", frozen)]
pub(crate) struct PyGauge {
    vec: GaugeVec,
    series: Option<Gauge>,
    meta: Arc<Meta>,
    values: Vec<String>,
}

impl PyGauge {
    fn series(&self) -> PyResult<&Gauge> {
        self.series.as_ref().ok_or_else(|| needs_labels(&self.meta.name, &self.meta.label_names))
    }
}

#[pymethods]
impl PyGauge {
    /// Sets the value.
    fn set(&self, value: f64) -> PyResult<()> {
        self.series()?.set(value);
        Ok(())
    }

    /// Adds `amount` (default 1); concurrent adds are all applied.
    #[pyo3(signature = (amount=1.0))]
    fn inc(&self, amount: f64) -> PyResult<()> {
        self.series()?.add(amount);
        Ok(())
    }

    /// Subtracts `amount` (default 1).
    #[pyo3(signature = (amount=1.0))]
    fn dec(&self, amount: f64) -> PyResult<()> {
        self.series()?.add(-amount);
        Ok(())
    }

    /// The series for these label values (by position or keyword).
    #[pyo3(signature = (*values, **by_name))]
    fn labels(
        &self,
        py: Python<'_>,
        values: &Bound<'_, PyTuple>,
        by_name: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyGauge> {
        let values = label_values(&self.meta.name, &self.meta.label_names, values, by_name)?;
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let series = self.vec.with(&refs).map_err(|e| err(py, e))?;
        Ok(PyGauge { vec: self.vec.clone(), series: Some(series), meta: self.meta.clone(), values })
    }

    /// The current value.
    #[getter]
    fn value(&self) -> PyResult<f64> {
        Ok(self.series()?.get())
    }

    /// The metric's name.
    #[getter]
    fn name(&self) -> String {
        self.meta.name.clone()
    }

    fn __repr__(&self) -> String {
        let value = self.series.as_ref().map_or("labelled".into(), |s| s.get().to_string());
        format!("Gauge({:?}, {}{value})", self.meta.name, labels_repr(&self.meta.label_names, &self.values) + ": ")
    }
}

/// A histogram, or one labelled series of it.
#[pyclass(module = "nimsync._native", name = "Histogram", frozen)]
pub(crate) struct PyHistogram {
    vec: HistogramVec,
    series: Option<Histogram>,
    meta: Arc<Meta>,
    values: Vec<String>,
}

impl PyHistogram {
    fn series(&self) -> PyResult<&Histogram> {
        self.series.as_ref().ok_or_else(|| needs_labels(&self.meta.name, &self.meta.label_names))
    }
}

/// A value a histogram can hold: an int >= 0, or a float >= 0 (rounded).
fn histogram_value(v: &Bound<'_, PyAny>) -> PyResult<u64> {
    let bad = || PyValueError::new_err(format!("histograms hold values >= 0 (int or float), got {v}"));
    if v.is_instance_of::<PyInt>() {
        v.extract::<u64>().map_err(|_| bad())
    } else if v.is_instance_of::<PyFloat>() {
        let f: f64 = v.extract()?;
        if f.is_nan() || f < 0.0 {
            return Err(bad());
        }
        // Saturates beyond u64::MAX.
        Ok(f.round() as u64)
    } else {
        Err(PyTypeError::new_err(format!("histograms hold int or float values, got {}", v.get_type().name()?)))
    }
}

#[pymethods]
impl PyHistogram {
    /// Records `value` (an int or float >= 0; floats are rounded), kept with
    /// the collector's sampling probability.
    fn record(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = histogram_value(value)?;
        self.series()?.record(v);
        Ok(())
    }

    /// The value at percentile `p` (0–100) of what was recorded, within 1%;
    /// 0 when nothing was.
    fn percentile(&self, p: f64) -> PyResult<u64> {
        if !(0.0..=100.0).contains(&p) {
            return Err(PyValueError::new_err(format!("percentile must be between 0 and 100, got {p}")));
        }
        Ok(self.series()?.percentile(p))
    }

    /// `{"count", "sum", "min", "max", "mean", "p50", "p90", "p95", "p99",
    /// "p999"}` from one snapshot.
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.series()?.summary();
        let d = PyDict::new(py);
        d.set_item("count", s.count)?;
        d.set_item("sum", s.sum)?;
        d.set_item("min", s.min)?;
        d.set_item("max", s.max)?;
        d.set_item("mean", s.mean)?;
        d.set_item("p50", s.p50)?;
        d.set_item("p90", s.p90)?;
        d.set_item("p95", s.p95)?;
        d.set_item("p99", s.p99)?;
        d.set_item("p999", s.p999)?;
        Ok(d)
    }

    /// The number of values recorded.
    #[getter]
    fn count(&self) -> PyResult<u64> {
        Ok(self.series()?.snapshot().count())
    }

    /// The series for these label values (by position or keyword).
    #[pyo3(signature = (*values, **by_name))]
    fn labels(
        &self,
        py: Python<'_>,
        values: &Bound<'_, PyTuple>,
        by_name: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyHistogram> {
        let values = label_values(&self.meta.name, &self.meta.label_names, values, by_name)?;
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let series = self.vec.with(&refs).map_err(|e| err(py, e))?;
        Ok(PyHistogram { vec: self.vec.clone(), series: Some(series), meta: self.meta.clone(), values })
    }

    /// The metric's name.
    #[getter]
    fn name(&self) -> String {
        self.meta.name.clone()
    }

    fn __repr__(&self) -> String {
        let count = self.series.as_ref().map_or("labelled".into(), |s| format!("count={}", s.snapshot().count()));
        format!("Histogram({:?}, {}{count})", self.meta.name, labels_repr(&self.meta.label_names, &self.values) + ": ")
    }
}

/// A running `/metrics` endpoint; a context manager that stops it on exit.
#[pyclass(module = "nimsync._native", name = "MetricsServer", frozen)]
pub(crate) struct PyMetricsServer {
    server: Mutex<Option<MetricsServer>>,
    host: String,
    port: u16,
}

#[pymethods]
impl PyMetricsServer {
    /// `(host, port)` the server listens on.
    #[getter]
    fn address(&self) -> (String, u16) {
        (self.host.clone(), self.port)
    }

    /// `http://host:port/metrics`.
    #[getter]
    fn url(&self) -> String {
        if self.host.contains(':') {
            format!("http://[{}]:{}/metrics", self.host, self.port)
        } else {
            format!("http://{}:{}/metrics", self.host, self.port)
        }
    }

    /// Stops serving and joins the server's thread (idempotent).
    fn stop(&self, py: Python<'_>) {
        let running = self.server.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(running) = running {
            py.detach(move || running.stop());
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> bool {
        self.stop(py);
        false
    }

    fn __repr__(&self) -> String {
        format!("MetricsServer({})", self.url())
    }
}
