// Package pcapng writes what egress watch saw as a pcapng file that
// Wireshark reads and `egress replay` turns back into the same observations.
//
// Every record uses one interface of link type Linux cooked v2 (SLL2), so a
// captured frame keeps its direction and interface index. Captured packets
// carry their process in the comment "egress: pid=N comm=X"; kernel socket
// events become synthesized TCP packets (SYN, SYN-ACK, RST) whose comment
// "egress-sock: ..." holds the event; the section header records the live
// window and loss ("egress-watch: ..."). The formats are defined, and read,
// in package capture/comment.
package pcapng
