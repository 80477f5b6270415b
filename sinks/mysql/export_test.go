package mysql

// UserCouponsWhere is the WHERE clause of UserCoupons with n states, for
// the test that EXPLAINs it.
var UserCouponsWhere = userCouponsWhere
