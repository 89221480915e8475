/*
 * Copyright (C) ngx_tunnel developers
 *
 * What the client was asked to do: the command line, the environment and
 * the config file, in that order of precedence, over the defaults.
 */

#ifndef _OPTIONS_H_INCLUDED_
#define _OPTIONS_H_INCLUDED_


#include "client.h"


#define OPTIONS_RUN            (-1)
#define OPTIONS_DEFAULT_PORT   "4443"
#define OPTIONS_DEFAULT_WINDOW (8 * 1024 * 1024)


/*
 * Fills "o" from argv, the environment and the config file.  Returns
 * OPTIONS_RUN (-1) when the client should run the tunnels in "o" (at least
 * one, every target resolved, a server given).  Otherwise returns the exit
 * status, after printing what was asked or what is wrong: 0 after --help,
 * --version or a clean "config check"; 2 for a usage error (a bad flag,
 * environment variable or config file line); 1 for a file that cannot be
 * read, a local name that does not resolve, or "config check" errors.
 */
int options_load(options_t *o, int argc, char **argv);


#endif /* _OPTIONS_H_INCLUDED_ */
