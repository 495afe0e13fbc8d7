/*
 * check_main.h - the one main() every Check suite in tests/ uses.
 */
#ifndef KVQ_TESTS_CHECK_MAIN_H
#define KVQ_TESTS_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

/* Defines main() running the suite that `make_suite` returns; exit status is
 * non-zero when any test failed. */
#define KVQ_CHECK_MAIN(make_suite)                                       \
    int main(void)                                                       \
    {                                                                    \
        SRunner *runner = srunner_create(make_suite());                  \
        srunner_run_all(runner, CK_NORMAL);                              \
        int failed = srunner_ntests_failed(runner);                      \
        srunner_free(runner);                                            \
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;                \
    }

/* Expect a call to fail with `status` and leave a non-empty message. */
#define KVQ_EXPECT_STATUS(call, status)                                               \
    do {                                                                              \
        kvq_status got_ = (call);                                                     \
        ck_assert_msg(got_ == (status), "%s returned %s, expected %s (%s)", #call,     \
                      kvq_status_name(got_), kvq_status_name(status), kvq_last_error()); \
        if ((status) != KVQ_OK) ck_assert_str_ne(kvq_last_error(), "");               \
    } while (0)

#endif
