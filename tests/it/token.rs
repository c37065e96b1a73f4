use breadbox_tests::*;
