// The invite page's script: an invite or reset link carries its token
// in the address's fragment, which no server, log or Referer header
// sees. This moves it into the form's field, hides that field, and
// takes the fragment out of the address.
(function () {
  "use strict";
  var token = location.hash.slice(1);
  var field = document.getElementById("token");
  var row = document.getElementById("token-row");
  if (!field || !row || !/^[A-Za-z0-9_-]{43}$/.test(token)) {
    return;
  }
  field.value = token;
  row.hidden = true;
  history.replaceState(null, "", location.pathname);
})();
