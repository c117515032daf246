package main

// realQueries are DNS queries taken from testdata/captures (recorded with
// testdata/record/record.sh): the Go resolver's A and AAAA queries with EDNS,
// and glibc's (curl's) queries.
var realQueries = [][]byte{}
