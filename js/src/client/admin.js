/**
 * The admin page's bundle (`static/admin.js`): starts the live view of the matches.
 * @module client/admin
 */
import { startAdminLive } from "./admin-live.js";

startAdminLive(document.getElementById("mug-live"));
