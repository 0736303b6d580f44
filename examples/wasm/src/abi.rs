//! The exported functions: the module's one [`Endpoint`] and its random
//! [`Pool`], behind integers and addresses in linear memory.
//!
//! Each function locks the state for the length of the call. Areas are
//! fixed in the module's memory, so an address stays valid for the life of
//! the instance; the host reads and writes them between calls only. A call
//! made while another runs, or after one trapped, returns
//! [`Error::Busy`] (or 0 and a null address) instead of waiting.
//!
//! Exported names are global to the module, hence the `wsp_` prefix.
// `#[no_mangle]` is the only construct here that the `unsafe_code` lint
// counts: it is how a function becomes a WebAssembly export, and unique
// prefixed names are what keeps it sound.
#![allow(unsafe_code)]

use core::ptr;

use spin::Mutex;

use crate::{Endpoint, Error, EventKind, Pool, RANDOM_CAPACITY, SEND_CAPACITY};

static RANDOM: Mutex<Pool> = Mutex::new(Pool::new());
static ENDPOINT: Mutex<Endpoint> = Mutex::new(Endpoint::new());

/// Run `f` on the endpoint, or return `busy` if it is locked.
fn with<T>(busy: T, f: impl FnOnce(&mut Endpoint) -> T) -> T {
    match ENDPOINT.try_lock() {
        Some(mut endpoint) => f(&mut endpoint),
        None => busy,
    }
}

fn with_random<T>(busy: T, f: impl FnOnce(&mut Pool) -> T) -> T {
    match RANDOM.try_lock() {
        Some(mut pool) => f(&mut pool),
        None => busy,
    }
}

/// A byte count as an ABI result; counts are bounded by the areas.
fn count(result: Result<usize, Error>) -> i32 {
    match result {
        Ok(n) => i32::try_from(n).unwrap_or(i32::MAX),
        Err(err) => err as i32,
    }
}

fn event(result: Result<Option<EventKind>, Error>) -> i32 {
    match result {
        Ok(Some(kind)) => kind as i32,
        Ok(None) => 0,
        Err(err) => err as i32,
    }
}

/// The address of the random area, [`wsp_random_capacity`] bytes.
#[no_mangle]
pub extern "C" fn wsp_random_area() -> *mut u8 {
    with_random(ptr::null_mut(), |pool| pool.area().as_mut_ptr())
}

/// The size of the random area.
#[no_mangle]
pub extern "C" fn wsp_random_capacity() -> usize {
    RANDOM_CAPACITY
}

/// `n` fresh random bytes were written at the front of the random area;
/// they replace whatever was left.
#[no_mangle]
pub extern "C" fn wsp_random_added(n: usize) {
    with_random((), |pool| pool.added(n));
}

/// The random bytes left.
#[no_mangle]
pub extern "C" fn wsp_random_available() -> usize {
    with_random(0, |pool| pool.available())
}

/// The address of the send area, [`wsp_send_capacity`] bytes.
#[no_mangle]
pub extern "C" fn wsp_send_area() -> *mut u8 {
    with(ptr::null_mut(), |e| e.send_area().as_mut_ptr())
}

/// The size of the send area.
#[no_mangle]
pub extern "C" fn wsp_send_capacity() -> usize {
    SEND_CAPACITY
}

/// Start a handshake with the host name and request target written one
/// after the other to the send area ([`Endpoint::connect`]); returns the
/// bytes queued or an error.
#[no_mangle]
pub extern "C" fn wsp_connect(host_len: usize, target_len: usize) -> i32 {
    with(Error::Busy as i32, |e| {
        count(e.connect(&RANDOM, host_len, target_len))
    })
}

/// The address of the free part of the receive buffer.
#[no_mangle]
pub extern "C" fn wsp_input_area() -> *mut u8 {
    with(ptr::null_mut(), |e| e.input_space().as_mut_ptr())
}

/// The size of the free part of the receive buffer.
#[no_mangle]
pub extern "C" fn wsp_input_space() -> usize {
    with(0, |e| e.input_space().len())
}

/// `n` bytes were written to the input area; returns how many were taken.
#[no_mangle]
pub extern "C" fn wsp_feed(n: usize) -> usize {
    with(0, |e| e.feed(n))
}

/// The next event's [`EventKind`], 0 when more input is needed, or an
/// error ([`Endpoint::poll`]).
#[no_mangle]
pub extern "C" fn wsp_poll() -> i32 {
    with(Error::Busy as i32, |e| event(e.poll()))
}

/// The socket ended: an [`EventKind::Close`] (code 1006) if the closing
/// handshake had not finished, 0, or an error ([`Endpoint::eof`]).
#[no_mangle]
pub extern "C" fn wsp_eof() -> i32 {
    with(Error::Busy as i32, |e| event(e.eof()))
}

/// The address of the last event's data.
#[no_mangle]
pub extern "C" fn wsp_event_area() -> *const u8 {
    with(ptr::null(), |e| e.event().as_ptr())
}

/// The length of the last event's data.
#[no_mangle]
pub extern "C" fn wsp_event_len() -> usize {
    with(0, |e| e.event().len())
}

/// 1 if the last event ends its message, 0 if more chunks follow.
#[no_mangle]
pub extern "C" fn wsp_event_finished() -> u32 {
    with(0, |e| u32::from(e.event_finished()))
}

/// The close code or HTTP status of the last event or error.
#[no_mangle]
pub extern "C" fn wsp_event_code() -> u32 {
    with(0, |e| u32::from(e.event_code()))
}

/// Send `len` bytes of the send area as a text chunk (the message's last
/// if `finished` is not 0); returns the bytes queued or an error.
#[no_mangle]
pub extern "C" fn wsp_send_text(len: usize, finished: u32) -> i32 {
    with(Error::Busy as i32, |e| {
        count(e.send_text(len, finished != 0))
    })
}

/// Send `len` bytes of the send area as a binary chunk (the message's last
/// if `finished` is not 0); returns the bytes queued or an error.
#[no_mangle]
pub extern "C" fn wsp_send_binary(len: usize, finished: u32) -> i32 {
    with(Error::Busy as i32, |e| {
        count(e.send_binary(len, finished != 0))
    })
}

/// Send a ping with `len` bytes of the send area; returns the bytes queued
/// or an error.
#[no_mangle]
pub extern "C" fn wsp_send_ping(len: usize) -> i32 {
    with(Error::Busy as i32, |e| count(e.send_ping(len)))
}

/// Send a close frame with `code` and `reason_len` bytes of the send area as
/// the reason; returns the bytes queued or an error.
#[no_mangle]
pub extern "C" fn wsp_send_close(code: u32, reason_len: usize) -> i32 {
    with(Error::Busy as i32, |e| {
        count(e.send_close(code, reason_len))
    })
}

/// The address of the output area.
#[no_mangle]
pub extern "C" fn wsp_output_area() -> *const u8 {
    with(ptr::null(), |e| e.output().as_ptr())
}

/// The bytes waiting in the output area.
#[no_mangle]
pub extern "C" fn wsp_output_len() -> usize {
    with(0, |e| e.output().len())
}

/// The output was sent: empty the output area.
#[no_mangle]
pub extern "C" fn wsp_output_clear() {
    with((), Endpoint::clear_output);
}

/// The state: 0 connecting, 1 open, 2 the server sent its close frame, 3
/// ours is sent, 4 closed (also before a handshake and after a refusal).
#[no_mangle]
pub extern "C" fn wsp_state() -> u32 {
    with(4, |e| match e.state() {
        wsproto_core::ConnectionState::Connecting => 0,
        wsproto_core::ConnectionState::Open => 1,
        wsproto_core::ConnectionState::RemoteClosing => 2,
        wsproto_core::ConnectionState::LocalClosing => 3,
        _ => 4,
    })
}
