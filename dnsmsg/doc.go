// Package dnsmsg parses DNS messages (RFC 1035) as seen on the wire by a
// passive observer: the header, the question and the answer section, with
// name compression bounded against loops and overlong names.
//
// A Msg is reused between messages: Unpack keeps its slices and name
// buffer, so a steady stream of messages allocates nothing. Names are
// returned in a safe presentation form (lowercase, no trailing dot, every
// byte outside [a-z0-9-_*] escaped as \DDD) so that a hostile name can never
// carry a newline or a terminal escape sequence into a report.
package dnsmsg
