//! Extension negotiation (RFC 6455 §9.1) through the [`Extension`] trait:
//! the [`ExtensionSet`] a handshake owns, and the two negotiation steps of
//! the Python library, usable without a handshake (over HTTP/2, say).

use core::fmt;

use crate::connection::Connection;
use crate::error::RemoteProtocolError;
use crate::extension::{parse_extensions, Extension};
use crate::random::RandomSource;

/// The extensions a handshake negotiates: a client offers each of them, a
/// server accepts the client's offers with them.
///
/// Implemented for [`NoExtensions`], `Option<T>`, arrays `[T; N]` of one
/// extension type, slices of trait objects `[&mut dyn Extension]` (through
/// `&mut`), and, with `alloc`, `Vec<Box<dyn Extension>>`. The handshake
/// hands the set back in [`Upgraded`](super::Upgraded), so the caller can
/// read what was agreed and configure the connection.
///
/// ```
/// use wsproto_core::extension::Extension;
/// use wsproto_core::handshake::{ExtensionSet, NoExtensions};
/// assert!(NoExtensions.is_empty());
/// fn names(set: &impl ExtensionSet) -> usize {
///     (0..set.len()).filter_map(|i| set.get(i)).count()
/// }
/// assert_eq!(names(&NoExtensions), 0);
/// ```
pub trait ExtensionSet {
    /// Storage for what a server's extensions accepted: the value of the
    /// `Sec-WebSocket-Extensions` header it sends, kept from the request to
    /// the response. Sets that can accept something use a
    /// [`heapless::String`] of [`EXTENSIONS_CAPACITY`] bytes;
    /// [`NoExtensions`] accepts nothing and keeps no storage.
    ///
    /// [`EXTENSIONS_CAPACITY`]: super::EXTENSIONS_CAPACITY
    type Accepted: fmt::Write + Default + AsRef<str>;

    /// The number of extensions.
    fn len(&self) -> usize;

    /// The extension at `index`, in the order offers are made.
    fn get(&self, index: usize) -> Option<&dyn Extension>;

    /// The extension at `index`, to negotiate it.
    fn get_mut(&mut self, index: usize) -> Option<&mut dyn Extension>;

    /// Whether the set is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `connection` with what the set negotiated applied to it, once the
    /// handshake succeeded: permessage-deflate, when an extension reports
    /// [`deflate_params`](Extension::deflate_params) (the first that does).
    /// Anything else leaves the connection as it is.
    /// [`Handshake::into_connection`](super::Handshake::into_connection)
    /// calls it exactly once.
    ///
    /// ```
    /// use wsproto_core::handshake::{ExtensionSet, NoExtensions};
    /// use wsproto_core::{Config, Connection};
    /// let connection = NoExtensions.apply(Connection::server(Config::default()));
    /// assert!(!connection.deflate_enabled());
    /// ```
    #[must_use]
    fn apply<R: RandomSource>(&self, connection: Connection<R>) -> Connection<R>
    where
        Self: Sized,
    {
        #[cfg(feature = "deflate")]
        if let Some(params) = (0..self.len())
            .filter_map(|i| self.get(i))
            .find_map(|ext| ext.deflate_params())
        {
            return connection.with_deflate(params);
        }
        connection
    }
}

/// The empty extension set: nothing is offered, every offer is declined.
///
/// ```
/// use wsproto_core::handshake::{ExtensionSet, NoExtensions};
/// assert_eq!(NoExtensions.len(), 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NoExtensions;

impl ExtensionSet for NoExtensions {
    type Accepted = heapless::String<0>;

    fn len(&self) -> usize {
        0
    }

    fn get(&self, _index: usize) -> Option<&dyn Extension> {
        None
    }

    fn get_mut(&mut self, _index: usize) -> Option<&mut dyn Extension> {
        None
    }
}

impl<T: Extension> ExtensionSet for Option<T> {
    type Accepted = heapless::String<{ super::EXTENSIONS_CAPACITY }>;

    fn len(&self) -> usize {
        usize::from(self.is_some())
    }

    fn get(&self, index: usize) -> Option<&dyn Extension> {
        match self {
            Some(ext) if index == 0 => Some(ext),
            _ => None,
        }
    }

    fn get_mut(&mut self, index: usize) -> Option<&mut dyn Extension> {
        match self {
            Some(ext) if index == 0 => Some(ext),
            _ => None,
        }
    }
}

impl<T: Extension, const N: usize> ExtensionSet for [T; N] {
    type Accepted = heapless::String<{ super::EXTENSIONS_CAPACITY }>;

    fn len(&self) -> usize {
        N
    }

    fn get(&self, index: usize) -> Option<&dyn Extension> {
        match self.as_slice().get(index) {
            Some(ext) => Some(ext),
            None => None,
        }
    }

    fn get_mut(&mut self, index: usize) -> Option<&mut dyn Extension> {
        match self.as_mut_slice().get_mut(index) {
            Some(ext) => Some(ext),
            None => None,
        }
    }
}

impl ExtensionSet for [&mut dyn Extension] {
    type Accepted = heapless::String<{ super::EXTENSIONS_CAPACITY }>;

    fn len(&self) -> usize {
        <[_]>::len(self)
    }

    fn get(&self, index: usize) -> Option<&dyn Extension> {
        match <[_]>::get(self, index) {
            Some(ext) => Some(&**ext),
            None => None,
        }
    }

    fn get_mut(&mut self, index: usize) -> Option<&mut dyn Extension> {
        match <[_]>::get_mut(self, index) {
            Some(ext) => Some(&mut **ext),
            None => None,
        }
    }
}

impl<S: ExtensionSet + ?Sized> ExtensionSet for &mut S {
    type Accepted = S::Accepted;

    fn len(&self) -> usize {
        (**self).len()
    }

    fn get(&self, index: usize) -> Option<&dyn Extension> {
        (**self).get(index)
    }

    fn get_mut(&mut self, index: usize) -> Option<&mut dyn Extension> {
        (**self).get_mut(index)
    }
}

#[cfg(feature = "alloc")]
impl ExtensionSet for alloc::vec::Vec<alloc::boxed::Box<dyn Extension>> {
    type Accepted = heapless::String<{ super::EXTENSIONS_CAPACITY }>;

    fn len(&self) -> usize {
        <[_]>::len(self)
    }

    fn get(&self, index: usize) -> Option<&dyn Extension> {
        match <[_]>::get(self, index) {
            Some(ext) => Some(&**ext),
            None => None,
        }
    }

    fn get_mut(&mut self, index: usize) -> Option<&mut dyn Extension> {
        match <[_]>::get_mut(self, index) {
            Some(ext) => Some(&mut **ext),
            None => None,
        }
    }
}

/// Server: agree on extensions. Each element of the client's offers (`offers`
/// yields `Sec-WebSocket-Extensions` values, each a comma-separated list) is
/// given to the first extension of `supported` with that name that has not
/// accepted an offer yet, through [`Extension::accept`]. The accepted forms
/// are written to `out`, comma-separated, in the client's order; the result
/// says whether any was (if not, send no `Sec-WebSocket-Extensions`).
///
/// Only the first 64 extensions of `supported` take part.
///
/// # Errors
///
/// A malformed offer is answered with HTTP 400. If `out` fails (a
/// fixed-capacity string that is full), the error asks for HTTP 500.
///
/// ```
/// use core::fmt;
/// use wsproto_core::extension::{Extension, ExtensionOffer};
/// use wsproto_core::handshake::server_extensions_handshake;
/// use wsproto_core::RemoteProtocolError;
///
/// struct Foo(bool);
/// impl Extension for Foo {
///     fn name(&self) -> &str { "x-foo" }
///     fn enabled(&self) -> bool { self.0 }
///     fn offer(&self, out: &mut dyn fmt::Write) -> fmt::Result { out.write_str("x-foo") }
///     fn accept(&mut self, _: &ExtensionOffer<'_>, out: &mut dyn fmt::Write)
///         -> Result<bool, fmt::Error> {
///         self.0 = true;
///         out.write_str("x-foo").map(|()| true)
///     }
///     fn finalize(&mut self, _: &ExtensionOffer<'_>) -> Result<(), RemoteProtocolError> {
///         Ok(())
///     }
/// }
///
/// let mut supported = [Foo(false)];
/// let mut header = String::new();
/// let any = server_extensions_handshake(["x-bar, x-foo; a=1"], &mut supported, &mut header)?;
/// assert!(any && supported[0].0);
/// assert_eq!(header, "x-foo");
/// # Ok::<(), RemoteProtocolError>(())
/// ```
pub fn server_extensions_handshake<'s, E: ExtensionSet + ?Sized>(
    offers: impl IntoIterator<Item = &'s str>,
    supported: &mut E,
    out: &mut dyn fmt::Write,
) -> Result<bool, RemoteProtocolError> {
    let mut accepted = 0u64;
    let mut out = Separated::new(out);
    for value in offers {
        for offer in parse_extensions(value) {
            let offer = offer?;
            let found = (0..supported.len().min(64)).find(|&i| {
                accepted & (1 << i) == 0
                    && supported.get(i).is_some_and(|ext| ext.name() == offer.name)
            });
            let Some(index) = found else { continue };
            let Some(ext) = supported.get_mut(index) else {
                continue;
            };
            match ext.accept(&offer, &mut out) {
                Ok(true) => accepted |= 1 << index,
                Ok(false) => {}
                Err(fmt::Error) => {
                    return Err(RemoteProtocolError::reject(
                        500,
                        "accepted extensions do not fit the response",
                    ))
                }
            }
            out.next_item();
        }
    }
    Ok(accepted != 0)
}

/// Client: apply the server's answer. Each extension in `accepted` (yielding
/// `Sec-WebSocket-Extensions` values of the response) is finalized by the
/// extension of `offered` with that name, through [`Extension::finalize`].
///
/// # Errors
///
/// The handshake fails (RFC 6455 §9.1, §4.1) when the server names an
/// extension the client did not offer, names one twice, or answers in a way
/// its extension rejects. Client-side errors carry close code 1002: there is
/// nothing to send, the caller closes the transport.
///
/// ```
/// # use core::fmt;
/// # use wsproto_core::extension::{Extension, ExtensionOffer};
/// use wsproto_core::handshake::{client_extensions_handshake, NoExtensions};
/// let mut offered = NoExtensions;
/// assert!(client_extensions_handshake([""], &mut offered).is_ok());
/// assert!(client_extensions_handshake(["x-unoffered"], &mut offered).is_err());
/// ```
pub fn client_extensions_handshake<'s, E: ExtensionSet + ?Sized>(
    accepted: impl IntoIterator<Item = &'s str>,
    offered: &mut E,
) -> Result<(), RemoteProtocolError> {
    finalize_extensions(accepted, offered, |_| false)
}

/// [`client_extensions_handshake`], also allowing the names for which
/// `offered_raw` is true: extensions the caller offered by hand.
pub(crate) fn finalize_extensions<'s, E: ExtensionSet + ?Sized>(
    accepted: impl IntoIterator<Item = &'s str>,
    offered: &mut E,
    offered_raw: impl Fn(&str) -> bool,
) -> Result<(), RemoteProtocolError> {
    let mut finalized = 0u64;
    for value in accepted {
        for answer in parse_extensions(value) {
            let answer = answer.map_err(|err| RemoteProtocolError::protocol(err.message()))?;
            let found = (0..offered.len().min(64))
                .find(|&i| offered.get(i).is_some_and(|ext| ext.name() == answer.name));
            match found {
                Some(index) => {
                    if finalized & (1 << index) != 0 {
                        return Err(RemoteProtocolError::protocol(
                            "the server accepted an extension twice",
                        ));
                    }
                    finalized |= 1 << index;
                    if let Some(ext) = offered.get_mut(index) {
                        ext.finalize(&answer)
                            .map_err(|err| RemoteProtocolError::protocol(err.message()))?;
                    }
                }
                None if offered_raw(answer.name) => {}
                None => {
                    return Err(RemoteProtocolError::protocol(
                        "the server accepted an extension the client did not offer",
                    ))
                }
            }
        }
    }
    Ok(())
}

/// A comma-separated list writer: a ", " goes before the first write of an
/// item when an earlier item wrote something, so an item that writes
/// nothing (a declined extension) leaves no separator.
pub(crate) struct Separated<'w> {
    inner: &'w mut dyn fmt::Write,
    pending: bool,
    any: bool,
}

impl<'w> Separated<'w> {
    pub(crate) fn new(inner: &'w mut dyn fmt::Write) -> Self {
        Self {
            inner,
            pending: false,
            any: false,
        }
    }

    /// Ends an item: the next write starts a new one.
    pub(crate) fn next_item(&mut self) {
        self.pending = self.any;
    }
}

impl fmt::Write for Separated<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s.is_empty() {
            return Ok(());
        }
        if self.pending {
            self.inner.write_str(", ")?;
            self.pending = false;
        }
        self.any = true;
        self.inner.write_str(s)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::extension::ExtensionOffer;

    /// A test extension: offers `name; p`, accepts an offer unless it has
    /// the parameter `refuse`, and finalizes any answer without the
    /// parameter `bad`.
    #[derive(Debug, Default)]
    pub(crate) struct Probe {
        pub(crate) name: &'static str,
        pub(crate) enabled: bool,
        pub(crate) accepted: usize,
    }

    impl Probe {
        pub(crate) fn new(name: &'static str) -> Self {
            Self {
                name,
                ..Self::default()
            }
        }
    }

    impl Extension for Probe {
        fn name(&self) -> &str {
            self.name
        }

        fn enabled(&self) -> bool {
            self.enabled
        }

        fn offer(&self, out: &mut dyn fmt::Write) -> fmt::Result {
            write!(out, "{}; p", self.name)
        }

        fn accept(
            &mut self,
            offer: &ExtensionOffer<'_>,
            out: &mut dyn fmt::Write,
        ) -> Result<bool, fmt::Error> {
            if offer.params().flatten().any(|p| p.name == "refuse") {
                return Ok(false);
            }
            self.enabled = true;
            self.accepted += 1;
            out.write_str(self.name)?;
            Ok(true)
        }

        fn finalize(&mut self, response: &ExtensionOffer<'_>) -> Result<(), RemoteProtocolError> {
            if response.params().flatten().any(|p| p.name == "bad") {
                return Err(RemoteProtocolError::reject(400, "bad parameter"));
            }
            self.enabled = true;
            Ok(())
        }
    }

    #[test]
    fn server_accepts_first_acceptable_offer_per_extension() {
        let mut set = [Probe::new("a"), Probe::new("b")];
        let mut out = heapless::String::<64>::new();
        let any = server_extensions_handshake(["c, b; refuse, a", "b, a; x=1"], &mut set, &mut out)
            .unwrap();
        assert!(any);
        assert_eq!(out.as_str(), "a, b");
        assert_eq!((set[0].accepted, set[1].accepted), (1, 1));
    }

    #[test]
    fn server_declines_everything_without_extensions() {
        let mut out = heapless::String::<8>::new();
        let any = server_extensions_handshake(["a, b"], &mut NoExtensions, &mut out).unwrap();
        assert!(!any);
        assert!(out.is_empty());
    }

    #[test]
    fn server_errors() {
        let mut set = [Probe::new("a")];
        let mut out = heapless::String::<8>::new();
        let err = server_extensions_handshake(["a; =1"], &mut set, &mut out).unwrap_err();
        assert_eq!(err.hint(), crate::error::ErrorHint::Reject(400));
        let mut tiny = heapless::String::<0>::new();
        let err = server_extensions_handshake(["a"], &mut set, &mut tiny).unwrap_err();
        assert_eq!(err.hint(), crate::error::ErrorHint::Reject(500));
    }

    #[test]
    fn client_finalizes_offered_and_rejects_the_rest() {
        let mut a = Probe::new("a");
        let mut b = Probe::new("b");
        {
            let mut set: [&mut dyn Extension; 2] = [&mut a, &mut b];
            let set: &mut [&mut dyn Extension] = &mut set;
            client_extensions_handshake(["b"], &mut &mut *set).unwrap();
        }
        assert!(!a.enabled && b.enabled);

        let mut set = Some(Probe::new("a"));
        let err = client_extensions_handshake(["a, a"], &mut set).unwrap_err();
        #[cfg(feature = "error-text")]
        assert_eq!(err.message(), "the server accepted an extension twice");
        assert_eq!(err.close_code(), Some(crate::CloseCode::PROTOCOL_ERROR));
        let err = client_extensions_handshake(["z"], &mut set).unwrap_err();
        #[cfg(feature = "error-text")]
        assert_eq!(
            err.message(),
            "the server accepted an extension the client did not offer"
        );
        assert_eq!(err.close_code(), Some(crate::CloseCode::PROTOCOL_ERROR));
        let err = client_extensions_handshake(["a; bad"], &mut Some(Probe::new("a"))).unwrap_err();
        assert_eq!(err.close_code(), Some(crate::CloseCode::PROTOCOL_ERROR));
        assert!(finalize_extensions(["z"], &mut set, |n| n == "z").is_ok());
    }
}
