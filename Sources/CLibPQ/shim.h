#ifndef PARLEY_CLIBPQ_SHIM_H
#define PARLEY_CLIBPQ_SHIM_H
#include <libpq-fe.h>
/// PG_DIAG_SQLSTATE lives in postgres_ext.h as a character macro; exposed as a value here.
static inline int parley_pg_diag_sqlstate(void) { return PG_DIAG_SQLSTATE; }
static inline int parley_pg_diag_message_detail(void) { return PG_DIAG_MESSAGE_DETAIL; }
static inline int parley_pg_diag_constraint(void) { return PG_DIAG_CONSTRAINT_NAME; }
/// libpq prints server NOTICEs ("relation already exists, skipping") on stderr by default;
/// Parley reports what matters itself.
static inline void parley_pg_ignore_notice(void *arg, const char *message) { (void)arg; (void)message; }
static inline void parley_pg_quiet_notices(PGconn *conn) { PQsetNoticeProcessor(conn, parley_pg_ignore_notice, NULL); }
#endif
