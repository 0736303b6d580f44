//! Which end of a connection this is: a word every layer uses, so it lives
//! in a leaf module.

/// Which end of the connection this is (`ConnectionType` in Python).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Role {
    /// The end that sent the opening request; masks every frame it sends.
    Client,
    /// The end that accepted the opening request.
    Server,
}
