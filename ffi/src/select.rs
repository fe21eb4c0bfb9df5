//! `nimsync_select` and `nimsync_select_with`: wait on several channel
//! operations at once.

use crate::cancel::{nimsync_cancel_token, token_opt, wait_fail};
use crate::channel::{nimsync_channel, wait_options};
use crate::status::{guard, nimsync_status, out, Fail};
use nimsync_core::{CancelToken, Error, Select};

/// What a `nimsync_select_case` does.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nimsync_select_op {
    /// Receive an item from the channel.
    Recv = 0,
    /// Send `item` to the channel.
    Send = 1,
}

/// One operation of a `nimsync_select` call.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nimsync_select_case {
    /// The channel (a live handle).
    pub channel: *const nimsync_channel,
    /// A `nimsync_select_op` value.
    pub op: u32,
    /// For send cases, the item to send; ignored for receive cases.
    pub item: usize,
}

/// Completes exactly one of `n_cases` operations, waiting at most
/// `timeout_ns` nanoseconds (0: do not wait — the "default" case;
/// `NIMSYNC_WAIT_FOREVER`: no limit). Cases are tried from a random start so
/// that none starves.
///
/// On return `*out_index` names the chosen case and the status is that
/// operation's: `NIMSYNC_STATUS_OK` (for a receive, the item is in
/// `*out_item`), `NIMSYNC_STATUS_CLOSED` (a receive on a closed, drained
/// channel, or a send on a closed channel — its item stays with the caller),
/// or `NIMSYNC_STATUS_BUSY`. With no case chosen the status is
/// `NIMSYNC_STATUS_EMPTY` (timeout 0 and nothing ready) or
/// `NIMSYNC_STATUS_TIMEOUT`, and `*out_index` is left alone. Items of send
/// cases that were not chosen stay with the caller.
///
/// `NIMSYNC_STATUS_NULL_ARGUMENT` if `cases` (with `n_cases > 0`), a case's
/// channel, `out_index` or `out_item` is NULL; `NIMSYNC_STATUS_INVALID_ARGUMENT`
/// for an unknown `op`, or no case and no timeout.
///
/// ```c
/// nimsync_select_case cases[2] = {
///     {numbers, NIMSYNC_SELECT_OP_RECV, 0},
///     {results, NIMSYNC_SELECT_OP_SEND, 42},
/// };
/// size_t which; uintptr_t item;
/// nimsync_status s = nimsync_select(cases, 2, NIMSYNC_WAIT_FOREVER, &which, &item);
/// ```
#[no_mangle]
pub extern "C" fn nimsync_select(
    cases: *const nimsync_select_case,
    n_cases: usize,
    timeout_ns: u64,
    out_index: *mut usize,
    out_item: *mut usize,
) -> nimsync_status {
    select_impl(cases, n_cases, timeout_ns, None, out_index, out_item)
}

/// `nimsync_select` that also gives up as soon as `token` (may be NULL: no
/// token) is cancelled: with `NIMSYNC_STATUS_CANCELLED` (the message has the
/// cancel message), or `NIMSYNC_STATUS_TIMEOUT` when a deadline cancelled
/// it; no case is chosen then, `*out_index` is left alone and the items of
/// send cases stay with the caller. The token is consulted when the select
/// has to wait: a case that is ready at once completes even if the token is
/// already cancelled, and a `timeout_ns` of 0 never waits.
///
/// ```c
/// nimsync_status s = nimsync_select_with(cases, 2, NIMSYNC_WAIT_FOREVER, job, &which, &item);
/// if (s == NIMSYNC_STATUS_CANCELLED) return;
/// ```
#[no_mangle]
pub extern "C" fn nimsync_select_with(
    cases: *const nimsync_select_case,
    n_cases: usize,
    timeout_ns: u64,
    token: *const nimsync_cancel_token,
    out_index: *mut usize,
    out_item: *mut usize,
) -> nimsync_status {
    select_impl(cases, n_cases, timeout_ns, token_opt(token), out_index, out_item)
}

fn select_impl(
    cases: *const nimsync_select_case,
    n_cases: usize,
    timeout_ns: u64,
    token: Option<&CancelToken>,
    out_index: *mut usize,
    out_item: *mut usize,
) -> nimsync_status {
    guard(|| {
        let out_index = out(out_index, "out_index")?;
        let out_item = out(out_item, "out_item")?;
        let cases: &[nimsync_select_case] = if n_cases == 0 {
            &[]
        } else if cases.is_null() {
            return Err(Fail::null("cases"));
        } else {
            // SAFETY: the caller passes `n_cases` readable cases (documented).
            unsafe { std::slice::from_raw_parts(cases, n_cases) }
        };
        let mut select: Select<'_, (usize, Result<usize, Error>)> = Select::new();
        for (i, case) in cases.iter().enumerate() {
            // SAFETY: a non-NULL channel is a live handle (caller contract).
            let handle = unsafe { case.channel.as_ref() }.ok_or_else(|| Fail::null(&format!("cases[{i}].channel")))?;
            let ch = &handle.channel;
            select = match case.op {
                0 => select.recv(ch, move |r| (i, r)),
                1 => select.send(ch, case.item, move |r| (i, r.map(|()| 0).map_err(|e| e.error))),
                op => {
                    return Err(Fail::new(
                        nimsync_status::InvalidArgument,
                        format!(
                            "invalid argument `cases[{i}].op`: {op} is not a nimsync_select_op (0 = RECV, 1 = SEND)"
                        ),
                    ))
                }
            };
        }
        let (index, outcome) = if timeout_ns == 0 {
            select.try_select().ok_or_else(|| Fail::new(nimsync_status::Empty, "no select case was ready".into()))?
        } else {
            select.wait_with(&wait_options(timeout_ns, token)).map_err(|e| wait_fail(e, token))?
        };
        *out_index = index;
        let item = outcome?;
        if cases[index].op == nimsync_select_op::Recv as u32 {
            *out_item = item;
        }
        Ok(())
    })
}
