// Package appproto reads the destination name a client states at the start
// of a TCP stream: the server_name of a TLS ClientHello (SNI) and the Host
// header of an HTTP/1.x request.
//
// Both names are attacker-controlled, so they are returned sanitized
// (lowercase; every byte outside a small safe set escaped as \xHH) and
// bounded (253 bytes of name before escaping). Saying "not TLS" or
// "not HTTP" allocates nothing, since most streams are neither.
package appproto
