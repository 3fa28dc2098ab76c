//! The edge's outbound client against a real actix-web server on port 0: what reaches the
//! server, and how each kind of answer or failure comes back.

mod client;
