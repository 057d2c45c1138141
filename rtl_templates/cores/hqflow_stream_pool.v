// hqflow_stream_pool: streaming max pooling of spikes, K x K window, stride S, zero padding PAD
// (numerics.maxpool_or: an OR over the window), all T steps at once (an OR of T-bit words).
// Stream in:  elements (y*W + x)*C + c, each the T spikes of one input (bit t = step t), through the
//             line buffer hqflow_window.v (K + S rows).
// Stream out: elements (yo*WO + xo)*C + c, T-bit words; tlast on an image's last element.
// Per output element: K cycles, one window column a cycle (the K rows of the column come together
// from the line buffer; rows and columns in the padding are left out), then one cycle that writes
// the OR to the output register (waits while it is full). Each output row starts with one cycle that
// waits for the window's rows. `active` is high in the cycles the core advances:
//   active cycles per image = HO * (1 + WO * C * (K + 1))
// ULTRA 1: the line buffer's rows in UltraRAM (hqflow_window.v).
module hqflow_stream_pool #(
    parameter integer H = 4, W = 4, C = 1, K = 3, S = 2, PAD = 1, T = 1, ULTRA = 0
) (
    input  wire           clk,
    input  wire           rst,
    input  wire           s_tvalid,
    output wire           s_tready,
    input  wire [T-1:0]   s_tdata,
    output reg            m_tvalid,
    input  wire           m_tready,
    output reg  [T-1:0]   m_tdata,
    output reg            m_tlast,
    output wire           active
);
    initial if (T < 1) $error("hqflow_stream_pool: T %0d must be >= 1 (H, W, C, K, S, PAD: hqflow_window.v's checks)", T);
    localparam integer WO = (W + 2 * PAD - K) / S + 1;
    localparam integer AB = (W * C > 1) ? $clog2(W * C) : 1;
    localparam integer XB = (W > 1) ? $clog2(W) : 1;
    localparam [1:0] S_ROW = 2'd0, S_COL = 2'd1, S_OUT = 2'd2;

    reg [1:0] state;
    wire row_ok;
    wire [K-1:0] row_live;              // rows of the window inside the image (a register of the window)
    wire last_row;
    wire [K*T-1:0] rows;
    reg  rd_en, next_row;
    reg  [AB-1:0] rd_addr;
    hqflow_window #(.H(H), .W(W), .C(C), .K(K), .S(S), .PAD(PAD), .EB(T), .ULTRA(ULTRA)) window (
        .clk(clk), .rst(rst), .s_tvalid(s_tvalid), .s_tready(s_tready), .s_tdata(s_tdata),
        .row_ok(row_ok), .next_row(next_row), .row_live(row_live), .last_row(last_row),
        .rd_en(rd_en), .rd_addr(rd_addr), .rd_rows(rows), .m_rd_en(1'b0), .m_rd_addr({XB{1'b0}}), .m_counts(),
        .l_rd_en(1'b0), .l_rd_addr({AB{1'b0}}), .l_rows());

    localparam integer XOB = WO > 1 ? $clog2(WO) : 1;
    localparam integer CB = C > 1 ? $clog2(C) : 1;
    localparam integer KB = K > 1 ? $clog2(K) : 1;
    localparam integer XIB = $clog2(W + 2 * K + 1) + 1;             // xi (signed): -PAD .. W + K
    localparam integer COB = $clog2((W + 2 * K + 1) * C + 1) + 1;   // xbase, col (signed): xi * C
    reg [XOB-1:0] xo;
    reg [CB-1:0] c;
    reg [KB-1:0] j;
    reg signed [XIB-1:0] xi;            // the column read
    reg signed [COB-1:0] xbase;         // (xo*S - PAD) * C
    reg signed [COB-1:0] col;           // xi * C
    reg d_valid, d_ok;
    reg [T-1:0] ored;
    integer ci;
    reg [T-1:0] col_or;
    always @* begin
        col_or = 0;
        for (ci = 0; ci < K; ci = ci + 1) if (row_live[ci]) col_or = col_or | rows[ci*T +: T];
    end
    wire [T-1:0] ored_next = ored | (d_ok ? col_or : {T{1'b0}});
    wire out_free = !m_tvalid || m_tready;
    assign active = (state == S_ROW && row_ok && !next_row) || state == S_COL || (state == S_OUT && out_free);

    always @(posedge clk) begin
        next_row <= 0;
        d_valid <= state == S_COL;
        d_ok <= xi >= 0 && xi < W;
        if (m_tvalid && m_tready) m_tvalid <= 0;
        if (d_valid) ored <= ored_next;
        case (state)
            S_ROW: if (row_ok && !next_row) begin   // (next_row: the window moves at this edge)
                xo <= 0; c <= 0; j <= 0;
                xi <= -PAD; xbase <= -PAD * C; col <= -PAD * C;
                rd_addr <= -PAD * C; rd_en <= 1;
                state <= S_COL;
            end
            S_COL: begin
                if (j == 0) ored <= 0;      // (no data lands in the first column's cycle)
                if (j == K - 1) begin
                    j <= 0; rd_en <= 0; state <= S_OUT;
                end else begin
                    j <= j + 1; xi <= xi + 1; col <= col + C; rd_addr <= col + C + c;
                end
            end
            default: if (out_free) begin   // S_OUT: the last column has landed (or lands now)
                m_tvalid <= 1;
                m_tdata <= d_valid ? ored_next : ored;
                m_tlast <= xo == WO - 1 && c == C - 1 && last_row;
                if (c != C - 1) begin      // the next channel of this pixel
                    c <= c + 1; xi <= xi - (K - 1); col <= xbase; rd_addr <= xbase + c + 1; rd_en <= 1;
                    state <= S_COL;
                end else if (xo != WO - 1) begin
                    c <= 0; xo <= xo + 1; xi <= xi - (K - 1) + S; xbase <= xbase + S * C;
                    col <= xbase + S * C; rd_addr <= xbase + S * C; rd_en <= 1;
                    state <= S_COL;
                end else begin
                    next_row <= 1;
                    state <= S_ROW;
                end
            end
        endcase
        if (rst) begin state <= S_ROW; m_tvalid <= 0; d_valid <= 0; rd_en <= 0; next_row <= 0; end
    end
    initial begin state = S_ROW; m_tvalid = 0; d_valid = 0; rd_en = 0; next_row = 0; end
endmodule
