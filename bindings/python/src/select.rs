//! `nimsync.select`: one of several channel operations.

use crate::blocking::{deadline, detached};
use crate::cancel::{cancel_arg, token_for};
use crate::channel::PyChannel;
use crate::errors::{to_py, wait_failed};
use nimsync_core::{Error, Select};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// A parsed case: its channel, and for a send the item.
struct Case {
    channel: Py<PyChannel>,
    item: Option<Py<PyAny>>,
}

type Outcome = (usize, Result<Option<Py<PyAny>>, (Error, Option<Py<PyAny>>)>);

fn parse_case(i: usize, case: &Bound<'_, PyAny>) -> PyResult<Case> {
    if let Ok(ch) = case.cast::<PyChannel>() {
        return Ok(Case { channel: ch.clone().unbind(), item: None });
    }
    if let Ok(t) = case.cast::<PyTuple>() {
        if t.len() == 2 {
            if let Ok(ch) = t.get_item(0)?.cast::<PyChannel>() {
                return Ok(Case { channel: ch.clone().unbind(), item: Some(t.get_item(1)?.unbind()) });
            }
        }
    }
    Err(PyTypeError::new_err(format!(
        "select case {i} must be a Channel (receive) or a (Channel, item) tuple (send), not {}",
        case.get_type().name()?
    )))
}

fn build(channels: &[Py<PyChannel>], items: Vec<Option<Py<PyAny>>>) -> Select<'_, Outcome> {
    let mut sel: Select<'_, Outcome> = Select::new();
    for (i, (ch, item)) in channels.iter().zip(items).enumerate() {
        let channel = &ch.get().channel;
        sel = match item {
            None => sel.recv(channel, move |r| (i, r.map(Some).map_err(|e| (e, None)))),
            Some(item) => sel.send(channel, item, move |r| (i, r.map(|()| None).map_err(|e| (e.error, Some(e.value))))),
        };
    }
    sel
}

/// Completes exactly one of `cases` and returns `(index, value)`.
///
/// A case is a `Channel` (receive; `value` is the item) or a
/// `(Channel, item)` tuple (send; `value` is None). Cases are tried from a
/// random start, so none starves. Waits at most `timeout` seconds (None:
/// forever) and raises `Timeout`; with `default=True` it does not wait and
/// returns None when no case is ready. It stops waiting when the `cancel`
/// token (default: the enclosing `nimsync.cancel_scope`'s) fires and raises
/// `Cancelled` (`Timeout` for a deadline token); no case happens then. A
/// receive case on a closed, drained channel raises `ChannelClosed`, a send
/// case on a closed channel raises it with the item as `value`; the
/// exception's `index` names the case.
///
/// ```python
/// i, value = nimsync.select([numbers, words, (results, 42)], timeout=1.0)
/// i, value = nimsync.select([numbers, words], cancel=token)
/// ```
#[pyfunction]
#[pyo3(signature = (cases, timeout = None, *, default = false, cancel = None))]
pub(crate) fn select(
    py: Python<'_>,
    cases: &Bound<'_, PyAny>,
    timeout: Option<f64>,
    default: bool,
    cancel: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<(usize, Option<Py<PyAny>>)>> {
    let cancel = cancel_arg(cancel)?;
    let parsed: Vec<Case> = cases.try_iter()?.enumerate().map(|(i, c)| parse_case(i, &c?)).collect::<PyResult<_>>()?;
    if parsed.is_empty() && timeout.is_none() && !default {
        return Err(PyValueError::new_err("select() with no case and no timeout would wait forever"));
    }
    let deadline = deadline(timeout)?;
    // Count every send as an unfinished task up front (see Channel.send);
    // the cases that are not chosen give theirs back below.
    let is_send: Vec<bool> = parsed.iter().map(|c| c.item.is_some()).collect();
    for c in parsed.iter().filter(|c| c.item.is_some()) {
        c.channel.get().tasks.add(1);
    }
    let channels: Vec<Py<PyChannel>> = parsed.iter().map(|c| c.channel.clone_ref(py)).collect();
    let items: Vec<Option<Py<PyAny>>> = parsed.into_iter().map(|c| c.item).collect();
    // The task counts are settled where the outcome is known (also when an
    // interrupt then discards it): the chosen send keeps its count.
    let settle = |outcome: &Result<Outcome, Error>| {
        let chosen_send = match outcome {
            Ok((i, Ok(_))) => Some(*i),
            _ => None,
        };
        for (i, ch) in channels.iter().enumerate() {
            if is_send[i] && Some(i) != chosen_send {
                ch.get().untask();
            }
        }
    };
    // First try every case with the GIL held: a ready case needs neither the
    // GIL released nor the ambient token looked up. The attempt sends copies
    // of the references (an unchosen copy is dropped here), so the items stay
    // for the wait.
    let copies = items.iter().map(|item| item.as_ref().map(|v| v.clone_ref(py))).collect();
    let tried = build(&channels, copies).try_select();
    // The select that waits is built where it runs: it is not `Send`, its parts are.
    let (outcome, token) = match tried {
        Some(outcome) => (Ok(outcome), None),
        None if default => (Err(Error::Empty), None),
        None => {
            let token = match token_for(py, cancel) {
                Ok(token) => token,
                Err(e) => {
                    settle(&Err(Error::Cancelled));
                    return Err(e);
                }
            };
            let outcome = detached(py, deadline, token.as_ref(), |opts| {
                let outcome = build(&channels, items).wait_with(opts);
                settle(&outcome);
                outcome
            })?;
            return finish(py, outcome, token.as_ref());
        }
    };
    settle(&outcome);
    finish(py, outcome, token.as_ref())
}

/// Turns a select's outcome into its Python result.
fn finish(
    py: Python<'_>,
    outcome: Result<Outcome, Error>,
    token: Option<&nimsync_core::CancelToken>,
) -> PyResult<Option<(usize, Option<Py<PyAny>>)>> {
    match outcome {
        Err(Error::Empty) => Ok(None),
        Err(e) => Err(wait_failed(py, e, token, Error::Timeout, None)),
        Ok((i, Ok(value))) => Ok(Some((i, value))),
        Ok((i, Err((e, value)))) => {
            let exc = to_py(py, e, value);
            exc.value(py).setattr("index", i)?;
            Err(exc)
        }
    }
}
