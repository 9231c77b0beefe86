/* SPDX-License-Identifier: Apache-2.0 */
/* cmdline.h -- what the programs' command lines share: GNU "--opt=value" and HOST:PORT syntax. */
#ifndef MW_EXAMPLE_CMDLINE_H
#define MW_EXAMPLE_CMDLINE_H

#include <stdbool.h>

/**
 * Returns argv with every "--opt=value" split into "--opt" and "value", as GNU getopt_long
 * accepts both spellings; *argc is updated. The strings are argv's own (the '=' becomes the
 * end of the option's name); the array is allocated once and kept until exit. NULL when out
 * of memory.
 */
char **cmdline_split(int *argc, char **argv);

/** Whether @p s reads HOST:PORT or [IPV6]:PORT with a port from 0 to 65535: the syntax only,
 *  so that a missing port is a usage error, while whether HOST resolves is the program's. */
bool cmdline_hostport(const char *s);

/** Reads @p s as a decimal number from @p min to @p max (no sign, nothing after it). */
bool cmdline_num(const char *s, unsigned long min, unsigned long max, unsigned long *out);

/** Writes @p port and a newline to @p path, through a temporary file renamed over it: a script
 *  waiting for the file never reads half a port. Returns 0, or -1 with errno. */
int cmdline_write_port_file(const char *path, unsigned port);

#endif
