//! The suite checked against the kit and against deliberately broken Issuer APIs: each broken
//! one must fail exactly the cases that catch its fault, and a failure's reproduction must show
//! the same failure when run by hand.

mod broken;
mod catalogue_doc;
mod load;
mod proxy;
mod reports;
