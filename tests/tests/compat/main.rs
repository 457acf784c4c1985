//! API compatibility with the Go WuKongIM server (v2.2.5): each test drives a route with the
//! request shapes of Go's handlers and asserts the values Go produces, citing the Go file and
//! function it mirrors. Run against one real node over HTTP.

mod channel_perms;
mod cmd_messages;
mod conversations;
mod messages;
