//! One module per subcommand.

pub(crate) mod appid;
pub(crate) mod bench;
pub(crate) mod cse;
pub(crate) mod decisions;
pub(crate) mod device;
pub(crate) mod pki;
pub(crate) mod registry;
pub(crate) mod up;
pub(crate) mod util;
